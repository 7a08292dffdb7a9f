/**
 * One question to several members (loop threads, processes), answered by each: settles with
 * every answer once each member has answered or gone away, so a member that dies mid-request
 * never leaves the caller waiting.
 * @internal
 */
export class Gather<M, T> {
  #seq = 0;
  #pending = new Map<number, { left: Set<M>; out: T[]; resolve: (out: T[]) => void }>();

  /** Sends the question (numbered `seq`) to each member; resolves with all answers. */
  ask(members: readonly M[], send: (member: M, seq: number) => void): Promise<T[]> {
    if (members.length === 0) return Promise.resolve([]);
    const seq = ++this.#seq;
    return new Promise((resolve) => {
      this.#pending.set(seq, { left: new Set(members), out: [], resolve });
      for (const m of members) send(m, seq);
    });
  }

  /** Records `member`'s answer to question `seq`; late or repeated answers are ignored. */
  answer(seq: number, member: M, items: readonly T[]): void {
    const p = this.#pending.get(seq);
    if (!p || !p.left.delete(member)) return;
    p.out.push(...items);
    if (p.left.size === 0) this.#settle(seq);
  }

  /** The member will not answer anything any more. */
  gone(member: M): void {
    for (const [seq, p] of this.#pending) if (p.left.delete(member) && p.left.size === 0) this.#settle(seq);
  }

  #settle(seq: number): void {
    const p = this.#pending.get(seq)!;
    this.#pending.delete(seq);
    p.resolve(p.out);
  }
}
