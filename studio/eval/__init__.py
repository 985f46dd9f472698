"""Evaluation that does not trust the reward a run optimised: judges, win rates with confidence intervals, reward
model accuracy on preference files, and the reward-hacking alarm during training."""
