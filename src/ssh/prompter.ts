/** Asks the person at the terminal; the library calls it only when the CLI provides one. */
export interface Prompter {
  ask(question: string, echo: boolean): Promise<string>;
}
