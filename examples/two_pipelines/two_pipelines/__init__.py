"""Two causalrec pipelines declared as components (see ``defs/``)."""
