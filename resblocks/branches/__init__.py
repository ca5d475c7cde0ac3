"""Branches: the F in ``shortcut(F(x), x)``. Plain modules with no residual logic of their own."""
