package Stub::CGI;

# STUB of the CGI object Koha hands a plugin as $self->{cgi}: only `param`.

use strict;
use warnings;

sub new { my ( $class, %params ) = @_; return bless {%params}, $class }
sub param { my ( $self, $name ) = @_; return $self->{$name} }

1;
