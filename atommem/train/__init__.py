"""Training: oracle/LLM trajectory synthesis, SFT (TRL SFTTrainer) and multi-turn GRPO with checkpoints.

TRL's GRPOTrainer is not used for RL: it trains one (prompt, completion) per sample, while each turn of
the memory agent has a prompt rebuilt from its memory state. atommem.train.grpo and rl_loop implement a
compact GRPO loop where every turn is its own row carrying its episode's advantage.
"""
