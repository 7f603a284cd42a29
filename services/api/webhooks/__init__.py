"""Signed webhooks (Standard Webhooks): each organisation's endpoints, the messages published to
them, their delivery with retries by the worker, and what the owner sees and replays.

Other domains publish with :func:`services.api.webhooks.service.publish` inside their own
transaction; ``webhooks.dispatch`` (a beat task) delivers.
"""
