"""Dataset helpers: export to the seed's ImageFolder layout, subsets, info."""
