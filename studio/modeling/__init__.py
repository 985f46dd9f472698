"""Models: loading (hub id, folder, the built-in tiny model), quantisation, LoRA, GPU fast paths, memory
estimates, and the generation helpers that training and serving share."""
