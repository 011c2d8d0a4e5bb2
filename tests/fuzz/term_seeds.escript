#!/usr/bin/env escript
%% term_seeds.escript - writes the seed corpus of tests/fuzz/fuzz_term.c
%% into the directory given (tests/fuzz/corpus/term/), from a BEAM's own
%% term_to_binary: control messages as frames (112, the control tuple,
%% the message after it, each with its version byte, as a BEAM node sends
%% them to a node that declined the atom cache), and terms of every kind
%% the walk knows.
%%
%%   escript tests/fuzz/term_seeds.escript tests/fuzz/corpus/term
%%
%% The fuzz target is the node me@fuzz (creation 7), its peer peer@fuzz:
%% pids and references are made for those, so that the frames reach the
%% paths for a local process as well as for a remote one.
-mode(compile).

main([Dir]) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Seeds = frames() ++ terms(),
    [ok = file:write_file(filename:join(Dir, Name), Bytes) || {Name, Bytes} <- Seeds],
    io:format("~b seeds in ~s~n", [length(Seeds), Dir]);
main(_) ->
    io:format(standard_error, "usage: term_seeds.escript DIR~n", []),
    halt(2).

%% A pid or reference of a named node, as a BEAM of that node would send it.
pid(Node, Id, Serial, Creation) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 88, 119, (byte_size(N)), N/binary, Id:32, Serial:32, Creation:32>>).

ref(Node, Creation, Words) ->
    N = atom_to_binary(Node, utf8),
    W = << <<X:32>> || X <- Words >>,
    binary_to_term(<<131, 90, (length(Words)):16, 119, (byte_size(N)), N/binary,
                     Creation:32, W/binary>>).

port(Node, Id, Creation) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 89, 119, (byte_size(N)), N/binary, Id:32, Creation:32>>).

%% UTF-8 atoms throughout, as a node with UTF8_ATOMS sends them.
t2b(T) -> term_to_binary(T, [{minor_version, 2}]).

frame(Ctrl) -> <<112, (t2b(Ctrl))/binary>>.
frame(Ctrl, Msg) -> <<112, (t2b(Ctrl))/binary, (t2b(Msg))/binary>>.

frames() ->
    Ours = pid('me@fuzz', 42, 1, 7),      % a process of the fuzz target's node
    Old = pid('me@fuzz', 42, 1, 6),       % ... of its earlier incarnation
    Theirs = pid('peer@fuzz', 100, 2, 3), % the peer's
    Big = pid('peer@fuzz', 16#7fffffff, 16#7fffffff, 3), % a pid that does not fit the bits
    Ref = ref('peer@fuzz', 3, [1, 2, 3]),
    OurRef = ref('me@fuzz', 7, [0, 5, 0]),
    Reason = {{badmatch, [1, 2, 3]}, [{m, f, 2, [{file, "m.erl"}, {line, 12}]}]},
    [{"send", frame({2, '', Ours}, hello)},
     {"send_tt", frame({12, '', Ours, token}, {self, <<"x">>})},
     {"send_krill_shape", frame({2, '', Ours}, {7, <<"bytes">>})},
     {"send_krill_shape_int", frame({2, '', Ours}, {70000, <<"data">>})},
     {"send_krill_shape_big", frame({2, '', Ours}, {1 bsl 40, <<>>})},
     {"send_sender", frame({22, Theirs, Ours}, {Theirs, ping})},
     {"send_sender_tt", frame({23, Theirs, Ours, token}, [1, 2, 3])},
     {"send_sender_old", frame({22, Theirs, Old}, lost)},
     {"send_sender_big_pid", frame({22, Big, Ours}, x)},
     {"reg_send", frame({6, Theirs, '', echo}, {Theirs, hi})},
     {"reg_send_unknown", frame({6, Theirs, '', nobody}, hi)},
     {"reg_send_tt", frame({16, Theirs, '', echo, token}, hi)},
     {"reg_send_gen_call", frame({6, Theirs, '', echo},
                                 {'$gen_call', {Theirs, Ref}, {request, 1}})},
     {"alias_send", frame({33, Theirs, OurRef}, hi)},
     {"link", frame({1, Theirs, Ours})},
     {"link_odd", frame({1, Theirs, pid('me@fuzz', 43, 1, 7)})},
     {"unlink", frame({4, Theirs, Ours})},
     {"unlink_id", frame({35, 99, Theirs, Ours})},
     {"unlink_id_ack", frame({36, 99, Theirs, Ours})},
     {"exit", frame({3, Theirs, Ours, normal})},
     {"exit_reason", frame({3, Theirs, Ours, Reason})},
     {"exit_tt", frame({13, Theirs, Ours, token, killed})},
     {"exit2", frame({8, Theirs, Ours, kill})},
     {"exit2_tt", frame({18, Theirs, Ours, token, {shutdown, why}})},
     {"payload_exit", frame({24, Theirs, Ours}, {segfault, <<"at 0x0">>})},
     {"payload_exit_tt", frame({25, Theirs, Ours, token}, noconnection)},
     {"payload_exit2", frame({26, Theirs, Ours}, {shutdown, {a, [b, c]}})},
     {"payload_exit2_tt", frame({27, Theirs, Ours, token}, "a string reason")},
     {"monitor_p", frame({19, Theirs, Ours, Ref})},
     {"monitor_p_name", frame({19, Theirs, echo, Ref})},
     {"monitor_p_noproc", frame({19, Theirs, nobody, Ref})},
     {"demonitor_p", frame({20, Theirs, Ours, Ref})},
     {"monitor_p_exit", frame({21, Theirs, Ours, OurRef, noproc})},
     {"monitor_p_exit_reason", frame({21, Theirs, Ours, OurRef, Reason})},
     {"payload_monitor_p_exit", frame({28, Theirs, Ours, OurRef}, {error, <<"boom">>})},
     {"group_leader", frame({7, Theirs, Ours})},
     {"spawn_request", frame({29, Ref, Theirs, Theirs, {krill, worker, 1}, [link]},
                             [<<"arg">>])},
     {"spawn_reply", frame({31, Ref, Ours, 0, Theirs})},
     {"unknown_op", frame({99, Theirs, Ours})},
     {"not_a_tuple", frame([2, '', Ours])}].

terms() ->
    Node = 'peer@fuzz',
    [{"t_atoms", t2b(['', ok, 'ÿ', 'λ', list_to_atom(lists:duplicate(255, $a))])},
     {"t_latin1_atom", term_to_binary(abc, [{minor_version, 0}])},
     {"t_ints", t2b([0, 255, 256, -1, 1 bsl 31, -(1 bsl 31), 1 bsl 64])},
     {"t_bigs", t2b({1 bsl 100, -(1 bsl 70), 1 bsl 2100})},
     {"t_floats", t2b([3.14, -0.0, 1.0e300])},
     {"t_old_float", term_to_binary(2.5, [{minor_version, 0}])},
     {"t_binaries", t2b({<<>>, <<"abc">>, <<0:8000>>})},
     {"t_bitstrings", t2b({<<1:3>>, <<255, 1:1>>})},
     {"t_string", t2b("hello, world")},
     {"t_improper", t2b([a, b | c])},
     {"t_nested_lists", t2b([[1, [2, [3, [4, [5, []]]]]], [[[]]]])},
     {"t_nested_tuples", t2b(lists:foldl(fun(_, A) -> {A} end, x, lists:seq(1, 12)))},
     {"t_large_tuple", t2b(list_to_tuple(lists:seq(1, 300)))},
     {"t_map", t2b(#{a => 1, <<"b">> => [2], {c} => #{d => 3.0}})},
     {"t_big_map", t2b(maps:from_list([{K, K} || K <- lists:seq(1, 40)]))},
     {"t_fun", t2b(fun(X) -> {X, Node} end)},
     {"t_export", t2b(fun erlang:self/0)},
     {"t_pids", t2b([self(), pid(Node, 1, 2, 3), pid('me@fuzz', 5, 1, 7)])},
     {"t_old_pid", <<131, 103, 100, 0, 9, "peer@fuzz", 1:32, 2:32, 3>>},
     {"t_refs", t2b([make_ref(), ref(Node, 3, [1, 2, 3]), ref('me@fuzz', 7, [0, 1, 2])])},
     {"t_ports", t2b([hd(erlang:ports()), port(Node, 1, 3)])},
     {"t_reason_kind", t2b({segfault, <<"at 0x0">>})},
     {"t_reason_shutdown", t2b({shutdown, {failed, [1, 2]}})},
     {"t_reason_deep",
      t2b({{nocatch, {a, {b, {c, [d, {e, #{f => g}}]}}}},
                      [{m, f, [1, <<"x">>, 2.0], [{file, "m.erl"}, {line, 3}]}]})}].
