"""From-scratch CNN: hand-written forward/backward ops, layers, optimisers and trainers."""
