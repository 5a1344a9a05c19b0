from tests.dataquality.conftest import role_client
from tests.graphql.conftest import gql_session, run

__all__ = ["gql_session", "role_client", "run"]
