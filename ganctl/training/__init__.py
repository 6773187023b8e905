"""The trainer: one loop for every registered architecture and loss.

config.py      resolved options (recipe + command line) and their checks
batches.py     real images resident on the device, drawn as the recipe says
step.py        one training iteration: the recipe's phases, one runner, one path into D
stats.py       named statistics summed on the device, read once per log interval
augment.py     DiffAugment: differentiable colour / translation / cutout, checkpointed randomness
ema.py         the generator's exponential moving average
run_folder.py  compatibility re-export of ganctl.runfolder's lock and truncation
checkpoint.py  the named state of a run to safetensors + JSON, atomically; resume
health.py      non-finite losses, discriminator collapse, samples that stop varying
evaluation.py  FID/KID during training; the best generator
loop.py        the run: data, device, run folder, logging, samples, checkpoints
"""
