"""The mask generator stage (``clpipe make-masks``): confident-learning keep-masks.

``logic`` holds the pure functions (arrays in, keep-masks out), ``compat2021`` the
re-implemented early-2021 cleanlab semantics of the seed's published masks, ``cli`` the
command.
"""
