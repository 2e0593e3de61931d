"""The DVC adapter: the only code that imports dvc, dvc_objects and dvc_data."""
