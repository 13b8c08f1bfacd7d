"""The sequential model: architecture, data, training, registry."""
