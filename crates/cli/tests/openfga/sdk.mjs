// OpenFGA's Node.js SDK (npm `@openfga/sdk`, pinned in package.json) against `portcullis serve`,
// unchanged.
//
// Usage: node sdk.mjs API_URL TOKEN. Creates a store, writes a model and tuples, and asks check,
// batch check (the server-side one), list objects (plain and streamed), list users, expand and
// read changes; prints one JSON object with what each call answered, which
// crates/cli/tests/openfga_clients.rs checks against the same answers as sdk.py's.

import { CredentialsMethod, OpenFgaClient } from "@openfga/sdk";

const MODEL = {
  schema_version: "1.1",
  type_definitions: [
    { type: "user" },
    {
      type: "folder",
      relations: { viewer: { this: {} } },
      metadata: {
        relations: { viewer: { directly_related_user_types: [{ type: "user" }] } },
      },
    },
    {
      type: "document",
      relations: {
        parent: { this: {} },
        viewer: {
          union: {
            child: [
              { this: {} },
              {
                tupleToUserset: {
                  tupleset: { relation: "parent" },
                  computedUserset: { relation: "viewer" },
                },
              },
            ],
          },
        },
      },
      metadata: {
        relations: {
          parent: { directly_related_user_types: [{ type: "folder" }] },
          viewer: { directly_related_user_types: [{ type: "user" }] },
        },
      },
    },
  ],
};

const byText = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

async function main(url, token) {
  const credentials = { method: CredentialsMethod.ApiToken, config: { token } };
  const out = {};
  let fga = new OpenFgaClient({ apiUrl: url, credentials });
  const store = await fga.createStore({ name: "sdk-node" });
  out.store = store.id;
  fga = new OpenFgaClient({ apiUrl: url, storeId: store.id, credentials });
  const model = await fga.writeAuthorizationModel(MODEL);
  out.model = model.authorization_model_id;
  fga = new OpenFgaClient({
    apiUrl: url,
    storeId: store.id,
    authorizationModelId: model.authorization_model_id,
    credentials,
  });
  await fga.write({
    writes: [
      { user: "user:anne", relation: "viewer", object: "document:roadmap" },
      { user: "folder:plans", relation: "parent", object: "document:budget" },
      { user: "user:bob", relation: "viewer", object: "folder:plans" },
    ],
  });

  const check = async (user, object) =>
    (await fga.check({ user, relation: "viewer", object })).allowed;
  out.check = {
    "anne/roadmap": await check("user:anne", "document:roadmap"),
    "bob/budget": await check("user:bob", "document:budget"),
    "bob/roadmap": await check("user:bob", "document:roadmap"),
  };

  const batch = await fga.batchCheck({
    checks: [
      { user: "user:anne", relation: "viewer", object: "document:roadmap" },
      { user: "user:anne", relation: "viewer", object: "document:budget" },
    ],
  });
  // Answers come in no particular order: sorted by object.
  out.batch = batch.result
    .map((r) => [r.request.object, r.allowed, r.error ?? null])
    .sort((a, b) => byText(a[0], b[0]));

  const listed = await fga.listObjects({ user: "user:bob", relation: "viewer", type: "document" });
  out.list_objects = [...listed.objects].sort(byText);
  const streamed = [];
  for await (const item of fga.streamedListObjects({
    user: "user:bob",
    relation: "viewer",
    type: "document",
  })) {
    streamed.push(item.object);
  }
  out.streamed = streamed.sort(byText);

  const users = await fga.listUsers({
    object: { type: "document", id: "budget" },
    relation: "viewer",
    user_filters: [{ type: "user" }],
  });
  out.list_users = users.users.map((u) => `${u.object.type}:${u.object.id}`).sort(byText);

  const expanded = await fga.expand({ relation: "viewer", object: "document:roadmap" });
  out.expand = expanded.tree.root.name;

  const changes = await fga.readChanges({ type: "document" });
  out.changes = changes.changes
    .map((c) => `${c.tuple_key.user} ${c.tuple_key.relation} ${c.tuple_key.object}`)
    .sort(byText);

  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const [url, token] = process.argv.slice(2);
main(url, token).catch((error) => {
  console.error(error?.stack ?? error);
  if (error?.responseData) console.error(JSON.stringify(error.responseData));
  process.exit(1);
});
