"""HTTP plumbing every front (``api``, ``frontend``, the tus views) shares.

Below the fronts and above the domain apps: it knows requests and responses,
not uploads or webhooks.
"""
