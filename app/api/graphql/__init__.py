"""GraphQL over the same services as REST: a generic schema plus typed types generated per workspace."""
