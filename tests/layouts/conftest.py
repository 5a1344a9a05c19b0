from tests.graphql.conftest import gql_session, run

__all__ = ["gql_session", "run"]
