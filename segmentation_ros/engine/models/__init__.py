"""Model families that register themselves with :func:`segmentation_ros.engine.registry.register_model`.

The registry finds them as any third-party plugin is found: through the
``segmentation_ros.models`` entry point group (``setup.py``), loaded on first use of the registry.
The registry never imports this package; this package imports the registry.
"""
