"""The article's PyTorch GAN, made runnable: no torchvision, seedable, same files as jaxgan."""
