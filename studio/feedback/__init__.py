"""Human feedback as Llama 2 and InstructGPT collected it: graded pairwise votes, rankings, vote sets and rounds.

records.py    one vote as a JSON object: a graded pair, a tie or "both bad", a ranking, an undo; its pairs
sets.py       named vote sets under <home>/votes/<set>/: guidelines, models, prompts, the append-only vote log
agreement.py  how often two annotators agree on the pairs both judged (percent and Cohen's kappa)
export.py     a set as a dataset folder (Parquet plus a dataset card), and its push to the Hub
rounds.py     "Train on these votes": RLHF-V1, V2, ... each a recorded pipeline from the set's votes so far
"""
