"""The trainer: one loop for every registered architecture and loss.

config.py      resolved options (recipe + command line) and their checks
batches.py     real images resident on the device, drawn as the recipe says
step.py        one training iteration, per discriminator-update mode
checkpoint.py  full training state to safetensors + JSON, atomically; resume
health.py      non-finite losses, discriminator collapse, samples that stop varying
loop.py        the run: data, device, run folder, logging, samples, checkpoints
"""
