"""The seed architectures. Importing this package registers them."""

from ganctl_plugins.archs import keras_dcgan, paper_dcgan, sngan, stylegan2, tf_dcgan  # noqa: F401
