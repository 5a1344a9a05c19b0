"""Retention: finished automation runs, finished webhook deliveries (with their attempt log), dispatched outbox events
(with their handled marks) and, when asked, timeline entries are pruned once older than the workspace's setting."""
