// A plan step: what the native child does, plus the words --trace prints.
import type { NativeStep } from '../native';
import type { OpCode } from './ops';

export interface PlanStep extends NativeStep {
  op: OpCode;
  /** What the step does, with its syscall: "mount proc on /proc". */
  title: string;
  /** Why a container needs it, with the man page to read. */
  why: string;
}

export function step(op: OpCode, title: string, why: string, fields: Omit<NativeStep, 'op'> = {}): PlanStep {
  return { op, title, why, ...fields };
}
