# Tables (atommem compare) and figures (atommem plot), each marked for `snakemake --report`: one rule
# of each, reused with its own inputs, outputs, config and log.


rule table_main:
    input:
        eval_summaries(main_table_runs()),
    output:
        csv=report("results/tables/main.csv", caption="../report/table_main.rst", category="Tables"),
        md="results/tables/main.md",
    log:
        "results/logs/compare/main.log",
    conda:
        CONDA_ENV
    threads: config["resources"]["report"]["threads"]
    resources:
        **resources_of("report"),
    params:
        cfg=main_table_config,
    shell:
        "atommem compare --config {params.cfg:q} > {log} 2>&1"


rule table_gains:
    input:
        eval_predictions(policy_runs()),
    output:
        csv=report("results/tables/gains.csv", caption="../report/table_gains.rst", category="Tables"),
        md="results/tables/gains.md",
    log:
        "results/logs/compare/gains.log",
    conda:
        CONDA_ENV
    threads: config["resources"]["report"]["threads"]
    resources:
        **resources_of("report"),
    params:
        cfg=gains_table_config,
    shell:
        "atommem gains --config {params.cfg:q} > {log} 2>&1"


use rule table_main as table_ablations with:
    input:
        eval_summaries(ablation_table_runs()),
    output:
        csv=report("results/tables/ablations.csv", caption="../report/table_ablations.rst", category="Tables"),
        md="results/tables/ablations.md",
    log:
        "results/logs/compare/ablations.log",
    params:
        cfg=ablation_table_config,


rule figure_op_frequency:
    input:
        **rl_metrics(RL_VARIANTS),
    output:
        **figure_outputs("op_frequency"),
    log:
        "results/logs/plot/op_frequency.log",
    conda:
        CONDA_ENV
    threads: config["resources"]["report"]["threads"]
    resources:
        **resources_of("report"),
    params:
        cfg=op_frequency_config,
    shell:
        "atommem plot --config {params.cfg:q} > {log} 2>&1"


use rule figure_op_frequency as figure_train_reward with:
    output:
        **figure_outputs("train_reward"),
    log:
        "results/logs/plot/train_reward.log",
    params:
        cfg=train_reward_config,


use rule figure_op_frequency as figure_em_by_length with:
    input:
        eval_summaries(main_table_runs()),
    output:
        **figure_outputs("em_by_length"),
    log:
        "results/logs/plot/em_by_length.log",
    params:
        cfg=em_by_length_config,
