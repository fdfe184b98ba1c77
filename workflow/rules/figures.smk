# Tables (atommem compare) and figures (atommem plot), each marked for `snakemake --report`.


rule table_main:
    input:
        eval_summaries(main_table_runs()),
    output:
        csv=report("results/tables/main.csv", caption="../report/table_main.rst", category="Tables"),
        md="results/tables/main.md",
    params:
        cfg=lambda wildcards: compare_config("main", main_table_runs()),
    log:
        "results/logs/compare/main.log",
    threads: config["resources"]["report"]["threads"]
    resources:
        **resources_of("report"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem compare --config {params.cfg:q} > {log} 2>&1"


rule table_ablations:
    input:
        eval_summaries(ablation_table_runs()),
    output:
        csv=report("results/tables/ablations.csv", caption="../report/table_ablations.rst", category="Tables"),
        md="results/tables/ablations.md",
    params:
        # the ablated policy's own run covers every group: keep the ablations' groups only
        cfg=lambda wildcards: compare_config("ablations", ablation_table_runs(), group_names(ABLATION_GROUPS)),
    log:
        "results/logs/compare/ablations.log",
    threads: config["resources"]["report"]["threads"]
    resources:
        **resources_of("report"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem compare --config {params.cfg:q} > {log} 2>&1"


rule figure_op_frequency:
    input:
        **rl_metrics(RL_VARIANTS),
    output:
        **figure_outputs("op_frequency"),
    params:
        cfg=lambda wildcards: plot_config("op_frequency"),
    log:
        "results/logs/plot/op_frequency.log",
    threads: config["resources"]["report"]["threads"]
    resources:
        **resources_of("report"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem plot --config {params.cfg:q} > {log} 2>&1"


rule figure_train_reward:
    input:
        **rl_metrics(RL_VARIANTS),
    output:
        **figure_outputs("train_reward"),
    params:
        cfg=lambda wildcards: plot_config("train_reward"),
    log:
        "results/logs/plot/train_reward.log",
    threads: config["resources"]["report"]["threads"]
    resources:
        **resources_of("report"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem plot --config {params.cfg:q} > {log} 2>&1"


rule figure_em_by_length:
    input:
        eval_summaries(main_table_runs()),
    output:
        **figure_outputs("em_by_length"),
    params:
        cfg=lambda wildcards: plot_config("em_by_length"),
    log:
        "results/logs/plot/em_by_length.log",
    threads: config["resources"]["report"]["threads"]
    resources:
        **resources_of("report"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem plot --config {params.cfg:q} > {log} 2>&1"
