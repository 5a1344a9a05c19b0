// The README's 5-minute tour with openapi-fetch and types generated from schema/openapi.json. `.ci/typescript`
// type-checks it: a request the README shows must compile as written (no field made required by its default).
import createClient from "openapi-fetch";

import type { components, paths } from "./schema";

type Problem = components["schemas"]["Problem"];

export async function tour(baseUrl: string, key: string): Promise<void> {
  const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });

  // An entity type (the `blank` preset: a default pipeline NEW, IN_PROGRESS, SUCCESS, FAIL) and two fields.
  await api.POST("/api/v1/entity-types", { body: { code: "dishwasher", title: "Dishwasher model" } });
  await api.POST("/api/v1/entity-types/{type}/fields", {
    params: { path: { type: "dishwasher" } },
    body: { code: "capacity", type: "integer", required: true, min: 1, max: 20 },
  });
  await api.POST("/api/v1/entity-types/{type}/fields", {
    params: { path: { type: "dishwasher" } },
    body: { code: "energy_class", type: "enum", options: [{ value: "A" }, { value: "B" }, { value: "C" }] },
  });

  // An element; bad input is refused with every problem listed.
  const { data: element, error } = await api.POST("/api/v1/entity-types/{type}/elements", {
    params: { path: { type: "dishwasher" } },
    body: { title: "DW-500", amount: 499.9, values: { capacity: 12, energy_class: "A" } },
  });
  if (error || !element) throw new Error(`not created: ${error?.detail}`);
  const broken = await api.POST("/api/v1/entity-types/{type}/elements", {
    params: { path: { type: "dishwasher" } },
    body: { title: "broken", values: { capacity: 99, energy_class: "Z", colour: "red" } },
  });
  const problem: Problem | undefined = broken.error;
  for (const { field, message } of problem?.errors ?? []) console.log(`${field}: ${message}`);

  // Move it to the next stage and read its history.
  const moved = await api.POST("/api/v1/elements/{element_id}/move", {
    params: { path: { element_id: element.id } },
    body: { stage_code: "IN_PROGRESS" },
  });
  console.log(moved.data?.stage_id, moved.data?.version);
  const history = await api.GET("/api/v1/elements/{element_id}/history", {
    params: { path: { element_id: element.id } },
  });
  console.log(history.data?.items.length);

  // Filter, sort and page.
  const filter = {
    and: [
      { field: "capacity", op: "gte", value: 10 },
      { field: "energy_class", op: "in", value: ["A", "B"] },
    ],
  };
  const page = await api.GET("/api/v1/entity-types/{type}/elements", {
    params: {
      path: { type: "dishwasher" },
      query: { filter: JSON.stringify(filter), sort: "-capacity,title", limit: 20, with_total: true },
    },
  });
  console.log(page.data?.total, page.data?.items.map((item) => item.title), page.data?.next_cursor);

  // The board: every stage with its count, sum of `amount` and first elements.
  const pipelines = await api.GET("/api/v1/entity-types/{type}/pipelines", {
    params: { path: { type: "dishwasher" } },
  });
  const pipeline = pipelines.data?.items[0];
  if (!pipeline) throw new Error("no pipeline");
  const board = await api.GET("/api/v1/pipelines/{pipeline_id}/board", {
    params: { path: { pipeline_id: pipeline.id }, query: { per_stage: 5 } },
  });
  for (const column of board.data?.stages ?? []) console.log(column.stage.code, column.count, column.amount_sum);

  // A card layout of two sections (fields placed nowhere go to the default one), the element's card built from it
  // with its values, and its timeline.
  await api.POST("/api/v1/entity-types/{type}/layouts", {
    params: { path: { type: "dishwasher" } },
    body: {
      name: "Dishwasher card",
      sections: [
        { code: "main", title: "Main", fields: ["title", "stage_id", "assigned_to", "amount"] },
        { code: "specs", title: "Specifications", fields: ["capacity", "energy_class"], default: true },
      ],
      hidden: ["currency", "score", "created_at", "updated_at", "moved_at"],
    },
  });
  const card = await api.GET("/api/v1/elements/{element_id}/card", {
    params: { path: { element_id: element.id } },
  });
  for (const section of card.data?.sections ?? []) {
    console.log(section.title, section.fields.map((field) => `${field.title}: ${JSON.stringify(field.value)}`));
  }
  const timeline = await api.GET("/api/v1/elements/{element_id}/history", {
    params: { path: { element_id: element.id } },
  });
  console.log(timeline.data?.items.map((entry) => entry.kind));
}
