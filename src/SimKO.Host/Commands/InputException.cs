namespace SimKO.Host.Commands;

/// <summary>A problem with a command's input (a file, a line, a field), naming it and what was expected;
/// the command reports it as an error and exits 2. One type for every command that reads user input.</summary>
public sealed class InputException(string message) : Exception(message);
