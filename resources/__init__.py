"""The shipped models (one folder each: model.json + weights) and sample images.

In a checkout this is the top-level ``resources/`` folder; a built wheel installs it as the
package ``lungsam_resources`` (see pyproject.toml), so an install outside a checkout finds
them too (:func:`engine.models.registry.resources_dir`).
"""
