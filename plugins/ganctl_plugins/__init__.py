"""ganctl's built-in plugins: the seed architectures, the losses and the datasets.

They are declared in ganctl's own pyproject under the ``ganctl.plugins`` entry-point group
and found the same way as any third-party plugin.
"""
