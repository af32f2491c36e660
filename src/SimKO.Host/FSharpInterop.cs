using Microsoft.FSharp.Core;

namespace SimKO.Host;

/// <summary>Reading the CLI's F# option values from C#.</summary>
public static class FSharpInterop
{
    /// <summary>The option's value, or <paramref name="fallback"/> when it is None.</summary>
    public static T Or<T>(this FSharpOption<T>? option, T fallback) =>
        FSharpOption<T>.get_IsSome(option) ? option!.Value : fallback;
}
