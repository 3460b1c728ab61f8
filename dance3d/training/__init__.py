"""Dense training: configs, the trainer loop, atomic checkpoints, distributed helpers."""
