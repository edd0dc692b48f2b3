"""OpenFGA's Python SDK (PyPI `openfga-sdk`) against `portcullis serve`, unchanged.

Usage: sdk.py API_URL TOKEN. Creates a store, writes a model and tuples, and asks check, batch
check, list objects (plain and streamed), list users, expand and read changes; prints one JSON
object with what each call answered, which crates/cli/tests/openfga_clients.rs checks.
"""

import asyncio
import json
import sys

from openfga_sdk import ClientConfiguration, OpenFgaClient
from openfga_sdk.client.models import (
    ClientBatchCheckItem,
    ClientBatchCheckRequest,
    ClientCheckRequest,
    ClientExpandRequest,
    ClientListObjectsRequest,
    ClientReadChangesRequest,
    ClientTuple,
    ClientWriteRequest,
)
from openfga_sdk.client.models.list_users_request import ClientListUsersRequest
from openfga_sdk.credentials import CredentialConfiguration, Credentials
from openfga_sdk.models.create_store_request import CreateStoreRequest
from openfga_sdk.models.fga_object import FgaObject
from openfga_sdk.models.user_type_filter import UserTypeFilter

MODEL = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {
            "type": "folder",
            "relations": {"viewer": {"this": {}}},
            "metadata": {
                "relations": {"viewer": {"directly_related_user_types": [{"type": "user"}]}}
            },
        },
        {
            "type": "document",
            "relations": {
                "parent": {"this": {}},
                "viewer": {
                    "union": {
                        "child": [
                            {"this": {}},
                            {
                                "tupleToUserset": {
                                    "tupleset": {"relation": "parent"},
                                    "computedUserset": {"relation": "viewer"},
                                }
                            },
                        ]
                    }
                },
            },
            "metadata": {
                "relations": {
                    "parent": {"directly_related_user_types": [{"type": "folder"}]},
                    "viewer": {"directly_related_user_types": [{"type": "user"}]},
                }
            },
        },
    ],
}


async def main(url, token):
    credentials = Credentials(
        method="api_token", configuration=CredentialConfiguration(api_token=token)
    )
    out = {}
    async with OpenFgaClient(ClientConfiguration(api_url=url, credentials=credentials)) as fga:
        store = await fga.create_store(CreateStoreRequest(name="sdk"))
        out["store"] = store.id
        fga.set_store_id(store.id)
        model = await fga.write_authorization_model(MODEL)
        out["model"] = model.authorization_model_id
        fga.set_authorization_model_id(model.authorization_model_id)
        await fga.write(
            ClientWriteRequest(
                writes=[
                    ClientTuple(user="user:anne", relation="viewer", object="document:roadmap"),
                    ClientTuple(user="folder:plans", relation="parent", object="document:budget"),
                    ClientTuple(user="user:bob", relation="viewer", object="folder:plans"),
                ]
            )
        )

        async def check(user, obj):
            answer = await fga.check(ClientCheckRequest(user=user, relation="viewer", object=obj))
            return answer.allowed

        out["check"] = {
            "anne/roadmap": await check("user:anne", "document:roadmap"),
            "bob/budget": await check("user:bob", "document:budget"),
            "bob/roadmap": await check("user:bob", "document:roadmap"),
        }
        batch = await fga.batch_check(
            ClientBatchCheckRequest(
                checks=[
                    ClientBatchCheckItem(user="user:anne", relation="viewer", object="document:roadmap"),
                    ClientBatchCheckItem(user="user:anne", relation="viewer", object="document:budget"),
                ]
            )
        )
        # Answers come in no particular order: sorted by object.
        out["batch"] = sorted(
            ([r.request.object, r.allowed, r.error] for r in batch.result), key=lambda r: r[0]
        )
        listed = await fga.list_objects(
            ClientListObjectsRequest(user="user:bob", relation="viewer", type="document")
        )
        out["list_objects"] = sorted(listed.objects)
        streamed = fga.streamed_list_objects(
            ClientListObjectsRequest(user="user:bob", relation="viewer", type="document")
        )
        out["streamed"] = sorted([item.object async for item in streamed])
        users = await fga.list_users(
            ClientListUsersRequest(
                object=FgaObject(type="document", id="budget"),
                relation="viewer",
                user_filters=[UserTypeFilter(type="user")],
            )
        )
        out["list_users"] = sorted(f"{u.object.type}:{u.object.id}" for u in users.users)
        expanded = await fga.expand(ClientExpandRequest(relation="viewer", object="document:roadmap"))
        out["expand"] = expanded.tree.root.name
        changes = await fga.read_changes(ClientReadChangesRequest(type="document"))
        out["changes"] = sorted(
            f"{c.tuple_key.user} {c.tuple_key.relation} {c.tuple_key.object}" for c in changes.changes
        )
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2]))
