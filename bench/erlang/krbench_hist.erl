%% krbench_hist - the log-linear latency histogram of bench/hist.c, on the
%% BEAM, with the same buckets so that both report the same percentile of
%% the same samples.
%%
%% Values below 2*?SUB are counted exactly, one bucket each. Above that, each
%% power of two [2^e, 2^(e+1)) is split into ?SUB equal sub-buckets, so a
%% bucket is never wider than 1/?SUB of the values it holds: with ?SUB = 128
%% a reported percentile is within 0.4% of a recorded value (bucket midpoints
%% are reported, clamped to [min, max]). Percentiles are read from the
%% buckets, never from stored samples; count, sum, min and max are exact.
%%
%% The buckets live in a counters array (mutable, off the process heap), so
%% recording a sample allocates nothing but the small record returned.
-module(krbench_hist).
-export([new/0, record/2, percentile/2, mean/1, count/1, write_cdf/3]).

-define(SUB_BITS, 7).
-define(SUB, 128).
-define(BUCKETS, ((64 - ?SUB_BITS) * ?SUB + ?SUB)).

-record(hist, {b, count = 0, sum = 0, min = 0, max = 0}).

new() ->
    #hist{b = counters:new(?BUCKETS, [])}.

record(#hist{b = B, count = C, sum = S, min = Min, max = Max} = H, V) ->
    counters:add(B, index(V) + 1, 1),
    H#hist{count = C + 1, sum = S + V,
           min = if C =:= 0; V < Min -> V; true -> Min end,
           max = if V > Max -> V; true -> Max end}.

%% hist_index: shift = max(e - ?SUB_BITS, 0) where 2^e <= V < 2^(e+1), and
%% the bucket is shift * ?SUB + (V bsr shift). Counting the shifts one by one
%% is cheap: round trips are a few hundred to a few thousand ns.
index(V) when V < 2 * ?SUB -> max(V, 0);
index(V) -> index(V bsr 1, 1).

index(W, Shift) when W < 2 * ?SUB -> Shift * ?SUB + W;
index(W, Shift) -> index(W bsr 1, Shift + 1).

%% The smallest value in bucket I, and how many values the bucket holds.
bucket(I) when I < 2 * ?SUB -> {I, 1};
bucket(I) ->
    Shift = I div ?SUB - 1,
    {(I - Shift * ?SUB) bsl Shift, 1 bsl Shift}.

%% The value at percentile P (0 < P =< 100): the midpoint of the bucket
%% holding the sample of rank ceil(P% of count), clamped to [min, max].
percentile(#hist{count = 0}, _) -> 0;
percentile(#hist{min = Min}, P) when P =< 0 -> Min;
percentile(#hist{max = Max}, P) when P >= 100 -> Max;
percentile(#hist{b = B, count = C, min = Min, max = Max}, P) ->
    Rank = min(max(ceil(P / 100 * C), 1), C),
    V = walk(B, 0, 0, Rank),
    min(max(V, Min), Max).

walk(B, I, Seen, Rank) ->
    Seen1 = Seen + counters:get(B, I + 1),
    if
        Seen1 >= Rank -> midpoint(I);
        true -> walk(B, I + 1, Seen1, Rank)
    end.

midpoint(I) ->
    {Lo, Width} = bucket(I),
    Lo + (Width - 1) div 2.

%% Write the distribution to File as hist_write_cdf does (bench/hist.h): a
%% comment line, then "value fraction" for each non-empty bucket in
%% increasing order, the value clamped to [min, max]. ok or {error, Why}.
write_cdf(#hist{b = B, count = C, min = Min, max = Max}, File, What) ->
    Lines = [io_lib:format("~b ~.6f~n", [min(max(midpoint(I), Min), Max), Seen / C])
             || {I, Seen} <- cumulative(B, 0, 0, C)],
    file:write_file(File, [io_lib:format("# ~s: ~b samples; value (ns), fraction at or below it~n",
                                         [What, C]) | Lines]).

%% {Bucket, samples at or below it} for the non-empty buckets, until all C
%% samples are counted.
cumulative(_, _, Seen, C) when Seen >= C -> [];
cumulative(B, I, Seen, C) ->
    case counters:get(B, I + 1) of
        0 -> cumulative(B, I + 1, Seen, C);
        N -> [{I, Seen + N} | cumulative(B, I + 1, Seen + N, C)]
    end.

mean(#hist{count = 0}) -> 0.0;
mean(#hist{count = C, sum = S}) -> S / C.

count(#hist{count = C}) -> C.
