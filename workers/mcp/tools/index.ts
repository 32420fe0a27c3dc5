/** Every MCP tool the bus serves, one module per feature area. A new area adds one module and one line here. */
import type { McpTool } from "../tool.ts";
import { agentTools } from "./agents.ts";
import { groupTools } from "./groups.ts";
import { mailTools } from "./mail.ts";
import { requestTools } from "./requests.ts";
import { topicTools } from "./topics.ts";

export const TOOLS: readonly McpTool[] = [...agentTools, ...topicTools, ...requestTools, ...groupTools, ...mailTools];
