"""Training recipes for resblocks: Lightning modules, data, and the Hydra entry points.

``python -m recipes.train recipe=NAME`` trains, ``python -m recipes.evaluate ckpt=PATH`` tests a
checkpoint; ``recipes.modules`` holds the LightningModules for use in your own projects.
"""
