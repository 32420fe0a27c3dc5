/**
 * A binary min-heap ordered by a number each item carries (a deadline, an offset). Groups keep
 * their redelivery deadlines and each priority lane's waiting messages in one, so the next due
 * deadline and the lowest waiting offset cost O(log n) to find however many are waiting.
 *
 * @example
 * const due = new MinHeap<{ at: number }>((x) => x.at);
 * due.push({ at: 5 }); due.push({ at: 1 });
 * due.pop(); // { at: 1 }
 */
export class MinHeap<T> {
  readonly #items: T[] = [];
  readonly #rank: (item: T) => number;

  constructor(rank: (item: T) => number) {
    this.#rank = rank;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const items = this.#items;
    items.push(item);
    let i = items.length - 1;
    const r = this.#rank(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#rank(items[parent]!) <= r) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    const r = this.#rank(last);
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && this.#rank(items[right]!) < this.#rank(items[left]!) ? right : left;
      if (this.#rank(items[child]!) >= r) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }

  clear(): void {
    this.#items.length = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    yield* this.#items;
  }
}
