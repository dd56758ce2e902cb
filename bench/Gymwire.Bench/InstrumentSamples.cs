using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Gymwire.Bench;

/// <summary>
/// Every value the server records on the named histograms while this is alive, so a latency figure can be split into
/// its stages (M5: the dispatcher's lag and the attempt's duration, against commit to receiver).
/// </summary>
internal sealed class InstrumentSamples : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<double>> _values = new();

    public InstrumentSamples(string meter, params string[] instruments)
    {
        foreach (var name in instruments)
        {
            _values[name] = new ConcurrentQueue<double>();
        }
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == meter && _values.ContainsKey(instrument.Name))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<double>((instrument, value, _, _) => _values[instrument.Name].Enqueue(value));
        _listener.Start();
    }

    /// <summary>"label p50 x ms, p99 y ms" for a histogram recorded in seconds.</summary>
    public string Milliseconds(string instrument, string label)
    {
        var sorted = _values[instrument].Select(v => v * 1000).Order().ToArray();
        return sorted.Length == 0
            ? $"{label}: no values"
            : $"{label} p50 {Stats.Percentile(sorted, 0.5):0.0} ms, p99 {Stats.Percentile(sorted, 0.99):0.0} ms";
    }

    public void Dispose() => _listener.Dispose();
}
