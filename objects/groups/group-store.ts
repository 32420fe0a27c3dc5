/**
 * GroupStore: the SQLite tables of a topic's consumer groups. A plain class over the topic's SQL
 * handle, like TopicLog. What a group must not forget across eviction and kill -9 is here:
 *
 * - `dt_groups`: one row per group: settings, ack floor (every offset below it is settled),
 *   creation time, running totals.
 * - `dt_group_pending`: one row per message delivered and not settled (or waiting for its next
 *   delivery, or on its way to the dead-letter topic): delivery count, holder, deadline.
 * - `dt_group_done`: messages at or above the floor settled out of order.
 *
 * An offset at or above the floor with no row in either table was never delivered. Rows are
 * written in the same turn as the change they record, so the runtime's output gate holds every
 * reply (a `settled` frame, a delivered job) until its row is durable.
 *
 * Tables are created by the first group, so a topic without groups has none.
 */
import type { GroupSettings, GroupStats } from "../../protocol/groups.ts";
import { hasTable, type SqlHandle } from "../log.ts";

export interface GroupRow {
  name: string;
  settings: GroupSettings;
  floor: number;
  created: number;
  stats: GroupStats;
}

export interface PendingRow {
  off: number;
  delivery: number;
  member: string | null;
  deadline: number;
  reason: string | null;
  /** Set once the message is on its way to the dead-letter topic: the idempotent producer id of that publish. */
  dead: string | null;
}

const UPSERT_PENDING = `INSERT INTO dt_group_pending (grp, off, delivery, member, deadline, reason, dead)
  SELECT ?1, value ->> '$[0]', value ->> '$[1]', value ->> '$[2]', value ->> '$[3]', value ->> '$[4]', value ->> '$[5]'
  FROM json_each(?2) WHERE true
  ON CONFLICT (grp, off) DO UPDATE SET delivery = excluded.delivery, member = excluded.member,
    deadline = excluded.deadline, reason = excluded.reason, dead = excluded.dead`;

export class GroupStore {
  readonly #sql: SqlHandle;
  #ready: boolean;

  constructor(sql: SqlHandle) {
    this.#sql = sql;
    this.#ready = hasTable(sql, "dt_groups");
  }

  /** Whether any group was ever created here (reading creates no tables). */
  get exists(): boolean {
    return this.#ready;
  }

  #ensure(): void {
    if (this.#ready) return;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dt_groups (
      name TEXT PRIMARY KEY, settings TEXT NOT NULL, floor INTEGER NOT NULL, created INTEGER NOT NULL, stats TEXT NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dt_group_pending (
      grp TEXT NOT NULL, off INTEGER NOT NULL, delivery INTEGER NOT NULL, member TEXT, deadline INTEGER NOT NULL,
      reason TEXT, dead TEXT, PRIMARY KEY (grp, off)) WITHOUT ROWID`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dt_group_done (grp TEXT NOT NULL, off INTEGER NOT NULL, PRIMARY KEY (grp, off)) WITHOUT ROWID`);
    this.#ready = true;
  }

  groups(): GroupRow[] {
    if (!this.#ready) return [];
    return this.#sql
      .exec<{ name: string; settings: string; floor: number; created: number; stats: string }>(
        "SELECT name, settings, floor, created, stats FROM dt_groups ORDER BY name",
      )
      .toArray()
      .map((r) => ({
        name: r.name,
        settings: JSON.parse(r.settings) as GroupSettings,
        floor: r.floor,
        created: r.created,
        stats: JSON.parse(r.stats) as GroupStats,
      }));
  }

  create(row: GroupRow): void {
    this.#ensure();
    this.#sql.exec(
      "INSERT INTO dt_groups (name, settings, floor, created, stats) VALUES (?, ?, ?, ?, ?)",
      row.name,
      JSON.stringify(row.settings),
      row.floor,
      row.created,
      JSON.stringify(row.stats),
    );
  }

  pending(group: string): PendingRow[] {
    if (!this.#ready) return [];
    return this.#sql
      .exec<{ off: number; delivery: number; member: string | null; deadline: number; reason: string | null; dead: string | null }>(
        "SELECT off, delivery, member, deadline, reason, dead FROM dt_group_pending WHERE grp = ? ORDER BY off",
        group,
      )
      .toArray();
  }

  /** Offsets settled out of order at or above the floor. */
  done(group: string): number[] {
    if (!this.#ready) return [];
    return this.#sql
      .exec<{ off: number }>("SELECT off FROM dt_group_done WHERE grp = ? ORDER BY off", group)
      .toArray()
      .map((r) => r.off);
  }

  /** Write pending rows (insert or replace), one statement for any number of them. */
  savePending(group: string, rows: readonly PendingRow[]): void {
    if (rows.length === 0) return;
    const values = rows.map((r) => [r.off, r.delivery, r.member, r.deadline, r.reason, r.dead]);
    this.#sql.exec(UPSERT_PENDING, group, JSON.stringify(values));
  }

  dropPending(group: string, offsets: readonly number[]): void {
    if (offsets.length === 0) return;
    this.#sql.exec("DELETE FROM dt_group_pending WHERE grp = ?1 AND off IN (SELECT value FROM json_each(?2))", group, JSON.stringify(offsets));
  }

  addDone(group: string, offsets: readonly number[]): void {
    if (offsets.length === 0) return;
    this.#sql.exec("INSERT OR IGNORE INTO dt_group_done (grp, off) SELECT ?1, value FROM json_each(?2)", group, JSON.stringify(offsets));
  }

  /** Undo `done` for offsets delivered again (dead letters replayed). */
  dropDone(group: string, offsets: readonly number[]): void {
    if (offsets.length === 0) return;
    this.#sql.exec("DELETE FROM dt_group_done WHERE grp = ?1 AND off IN (SELECT value FROM json_each(?2))", group, JSON.stringify(offsets));
  }

  /** Move the floor and store the totals; `sweep` drops the `done` rows below the floor (when the caller knows there are some). */
  saveFloor(group: string, floor: number, stats: GroupStats, sweep = true): void {
    this.#sql.exec("UPDATE dt_groups SET floor = ?, stats = ? WHERE name = ?", floor, JSON.stringify(stats), group);
    if (sweep) this.#sql.exec("DELETE FROM dt_group_done WHERE grp = ? AND off < ?", group, floor);
  }

  /** Forget every delivery of `group` and start it again at `floor`. */
  reset(group: string, floor: number, stats: GroupStats): void {
    this.#sql.exec("DELETE FROM dt_group_pending WHERE grp = ?", group);
    this.#sql.exec("DELETE FROM dt_group_done WHERE grp = ?", group);
    this.#sql.exec("UPDATE dt_groups SET floor = ?, stats = ? WHERE name = ?", floor, JSON.stringify(stats), group);
  }

  delete(group: string): void {
    if (!this.#ready) return;
    this.#sql.exec("DELETE FROM dt_group_pending WHERE grp = ?", group);
    this.#sql.exec("DELETE FROM dt_group_done WHERE grp = ?", group);
    this.#sql.exec("DELETE FROM dt_groups WHERE name = ?", group);
  }
}
