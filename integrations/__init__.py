"""Adapters to outside frameworks and services (installed as ``adaptive_router.integrations``)."""
