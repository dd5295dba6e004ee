"""Data layer: dataset builders, media decoding, feature-file readers and collators."""
