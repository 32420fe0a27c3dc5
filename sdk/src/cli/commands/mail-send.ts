/** `dovetail mail send <from> --to A[,B] [--cc] [--bcc] --subject S [body|-]`: send agent mail. */
import { text } from "node:stream/consumers";
import { MAIL_IMPORTANCE, type MailImportance, type SendMail } from "../../../../protocol/mail.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT, UsageError } from "../errors.ts";
import { agentArgument, agentList, threadArgument } from "./mail-args.ts";

export const mailSend = defineCommand({
  name: "mail send",
  args: ["<from>", "[body|-]"],
  summary: "send a message from agent <from> to other agents",
  description: `Sends one message from the registered agent <from> (the token needs publish on its inbox topic
_mail.<from>) to the registered agents named by --to, --cc and --bcc. The body is Markdown: the
argument, or stdin with "-". Prints the message id and its thread; reply by passing --thread.`,
  json: `{"id":N,"threadId":"…","createdAt":ms,"recipients":N}`,
  options: {
    to: { type: "string", value: "A,B", multiple: true, help: "recipients (comma-separated, repeatable)" },
    cc: { type: "string", value: "A,B", multiple: true, help: "copy recipients" },
    bcc: { type: "string", value: "A,B", multiple: true, help: "blind copy recipients (seen only by the sender's readers)" },
    subject: { type: "string", short: "s", value: "S", help: "subject line (required)" },
    thread: { type: "string", value: "T", help: "join thread T (a reply)" },
    importance: { type: "string", value: "I", help: `one of ${MAIL_IMPORTANCE.join(", ")} (default normal)` },
    "ack-required": { type: "boolean", help: "ask recipients to acknowledge it" },
    data: { type: "string", value: "JSON", help: "structured data for programs" },
  },
  async run({ values, positionals, out }) {
    const from = agentArgument(positionals[0]!, "from");
    if (values.subject === undefined || values.subject === "") throw new UsageError("mail send: --subject is required");
    const mail: SendMail = { from, to: agentList(values.to, "--to"), subject: values.subject };
    const cc = agentList(values.cc, "--cc");
    const bcc = agentList(values.bcc, "--bcc");
    if (cc.length > 0) mail.cc = cc;
    if (bcc.length > 0) mail.bcc = bcc;
    if (mail.to.length + cc.length + bcc.length === 0) throw new UsageError("mail send: give at least one recipient (--to, --cc or --bcc)");
    if (values.thread !== undefined) mail.threadId = threadArgument(values.thread);
    if (values.importance !== undefined) {
      if (!(MAIL_IMPORTANCE as readonly string[]).includes(values.importance)) throw new UsageError(`--importance: one of ${MAIL_IMPORTANCE.join(", ")}`);
      mail.importance = values.importance as MailImportance;
    }
    if (values["ack-required"]) mail.ackRequired = true;
    if (values.data !== undefined) {
      try {
        mail.data = JSON.parse(values.data);
      } catch {
        throw new UsageError("--data: not valid JSON");
      }
    }
    const body = positionals[1];
    if (body === "-") mail.bodyMd = await text(process.stdin);
    else if (body !== undefined) mail.bodyMd = body;
    return withBus(values, 1, async (bus) => {
      const sent = await bus.mail.send(mail);
      out.print(sent, () => `sent message ${sent.id} to ${sent.recipients} recipient${sent.recipients === 1 ? "" : "s"} (thread ${sent.threadId})`);
      return EXIT.ok;
    });
  },
});
