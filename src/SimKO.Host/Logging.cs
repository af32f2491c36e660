using Microsoft.Extensions.Logging;

namespace SimKO.Host;

/// <summary>The host's console logging (Microsoft.Extensions.Logging): one line per event with a timestamp.</summary>
public static class Logging
{
    static readonly ILoggerFactory Factory = LoggerFactory.Create(b => b
        .SetMinimumLevel(Environment.GetEnvironmentVariable("SIMKO_LOG") == "debug" ? LogLevel.Debug : LogLevel.Information)
        .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; }));

    public static ILogger Create(string category) => Factory.CreateLogger(category);
}
