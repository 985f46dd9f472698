"""Rewards for the stages that sample answers (ppo, grpo, rloo, rejection): the sources a config's `rewards`
section names (reward runs, built-in rules, Python functions with TRL's signature), checked before a run starts,
and combined into one score per answer.

    builtins.py   the rule-based rewards (format, length, contains, excludes, reference_match, json_valid,
                  no_repetition), each with help text and checked parameters
    functions.py  loading FILE.py:NAME reward functions and calling them as TRL does
    sources.py    one scorer per configured source, the combined score, the dry run before training
"""
