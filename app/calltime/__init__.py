"""Best time to call: when a contact is likely to answer, learned from the call history (issue 17, item 1)."""
