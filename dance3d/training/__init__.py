"""Dense training: configs, the trainer loop, distributed helpers (checkpoints: ``dance3d.checkpoint``)."""
