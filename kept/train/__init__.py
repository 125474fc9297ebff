"""Pretraining: LightningModules per method and the `kept pretrain` entry."""
