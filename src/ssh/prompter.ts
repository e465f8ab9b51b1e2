/** Asks the person at the terminal; the library calls it only when the CLI provides one. */
export interface Prompter {
  ask(question: string, echo: boolean): Promise<string>;
  /** Shows the person text that asks nothing (a server's keyboard-interactive instructions); not shown without it. */
  say?(text: string): void;
}
