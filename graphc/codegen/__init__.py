"""Code generation: `lower` turns a scheduled, planned program into plain records; `render`
pours them through the jinja2 templates into one Cython module."""
