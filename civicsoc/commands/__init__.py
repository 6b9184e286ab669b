"""Command groups of the ``civicsoc`` CLI, one module each; ``civicsoc.cli`` mounts them."""
