"""Using finished runs: answers for Compare and Chat, reward model scores, blind votes."""
