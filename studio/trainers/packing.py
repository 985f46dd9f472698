"""Packed SFT batches that suit the model's attention kernel.

TRL packs examples best-fit into rows of data.max_length and then, for FlashAttention's variable-length kernel,
flattens the whole batch into one long row whose position_ids restart at each example. Without that kernel
(PyTorch SDPA, the CPU, eager attention) transformers turns the restarting position_ids into a block-diagonal
mask over the flattened row: batch_size x max_length tokens attending over batch_size x max_length positions, a
batch_size-fold waste on attention (bench/packing.py measured packing slower than padding on the CPU that way).

`RowPackingCollator` keeps each packed row its own row instead: position_ids restart at each example, so the
mask stays block-diagonal within a row, and the attention cost is max_length squared per row.
"""

from __future__ import annotations

from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")


def flattens_well(model) -> bool:
    """Whether the model's attention has a variable-length kernel, for which TRL's flattened batch is best."""
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) in VARLEN_ATTENTION


class RowPackingCollator(DataCollatorForLanguageModeling):
    """Pads packed rows to the batch's longest and returns position_ids with no attention_mask: transformers
    then masks each packed example off from its neighbours in the row. Padding gets position 0, so each pad
    token is a one-token example of its own, and label -100."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        super().__init__(pad_token_id=pad_token_id, return_position_ids=True, pad_to_multiple_of=pad_to_multiple_of)

    def torch_call(self, examples):
        batch = super().torch_call(examples)
        # An attention_mask would make transformers ignore position_ids when building the mask.
        del batch["attention_mask"]
        # The first token of an example is not predicted from the last token of the one before it.
        batch["labels"][batch["position_ids"] == 0] = -100
        return batch
