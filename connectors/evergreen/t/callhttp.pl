#!/usr/bin/perl

# Does with one template what Evergreen's Action/Trigger does with an event
# whose reactor is CallHTTP, with the same libraries: Template Toolkit
# renders the template against the event's environment (Reactor.pm
# run_TT), Config::General parses the result (CallHTTP.pm, with -AutoTrue),
# and LWP::UserAgent sends it, with the <Headers> as default headers.
#
#   perl t/callhttp.pl TEMPLATE ENVIRONMENT.json
#
# ENVIRONMENT.json holds `target`, `event` and `bib` (the titles
# helpers.get_copy_bib_basics returns, by copy id); `params` come from
# LECTERN_URL and LECTERN_TOKEN, as the event definition's event_params
# would give them. Prints the status line and the body, and exits 0 only
# on a 2xx. Written for Lectern's tests; it contains no Evergreen code.

use strict;
use warnings;

use Config::General qw(ParseConfig);
use JSON::PP;
use LWP::UserAgent;
use Template;

my ( $template, $environment ) = @ARGV;
die "usage: $0 TEMPLATE ENVIRONMENT.json\n" unless $template && $environment;

open my $fh, '<:raw', $environment or die "$environment: $!\n";
my $env = JSON::PP->new->utf8->decode( do { local $/; <$fh> } );
close $fh;

my $bib = delete $env->{bib} // {};
$env->{params} = {
    lectern_url   => $ENV{LECTERN_URL}   // die("set LECTERN_URL\n"),
    lectern_token => $ENV{LECTERN_TOKEN} // die("set LECTERN_TOKEN\n"),
};

# The helpers the templates use, as Evergreen's Reactor.pm defines them:
# jsonify is OpenSRF's perl2JSON followed by escape_json, which writes
# every non-ASCII character as \uXXXX.
$env->{helpers} = {
    jsonify => sub {
        my $json = JSON::PP->new->allow_nonref->canonical->encode( $_[0] );
        $json =~ s/([^\x00-\x7f])/sprintf('\\u%04x', ord($1))/ge;
        return $json;
    },
    get_copy_bib_basics => sub { return $bib->{ $_[0] } // {} },
};

my $tt = Template->new( { ABSOLUTE => 1 } );
my $text = '';
$tt->process( $template, $env, \$text ) or die 'template: ' . $tt->error . "\n";

my %c = ParseConfig( -AutoTrue => 1, -String => $text );
die "the template gives no url and method\n" unless $c{url} && $c{method};
die "method $c{method} is not one CallHTTP sends\n"
    unless $c{method} =~ /^(post|get|put|delete|head)$/;

my $ua = LWP::UserAgent->new( agent => $c{agent} || 'EvergreenReactor/1.0' );
my $headers = $c{Headers} // {};
$ua->default_header( $_ => $headers->{$_} ) for keys %$headers;

my $method = $c{method};
my $response = $ua->$method( $c{url}, Content => $c{content} );
print $response->status_line, "\n", $response->decoded_content // '', "\n";
exit( $response->is_success ? 0 : 1 );
