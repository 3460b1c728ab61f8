"""DANCE: AVA (activation variability amplification) and AAP (adaptive activation pruning) trainers."""
